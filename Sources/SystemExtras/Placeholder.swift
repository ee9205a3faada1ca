// SystemExtras target.
