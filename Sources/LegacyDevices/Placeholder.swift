// LegacyDevices target.
