// GuestMemory target.
