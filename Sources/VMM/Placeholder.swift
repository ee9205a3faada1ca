// VMM target.
