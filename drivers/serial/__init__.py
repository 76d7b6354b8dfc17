"""Serial (USB-serial adapter) devices: pure line/frame codecs plus thin pyserial sessions."""
