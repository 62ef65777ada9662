"""GenICam cameras (GigE Vision, USB3 Vision) through Aravis: config, feature checks,
pixel conversion, device clock, stream statistics and the frame source."""
