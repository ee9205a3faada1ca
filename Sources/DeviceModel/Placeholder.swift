// DeviceModel target.
