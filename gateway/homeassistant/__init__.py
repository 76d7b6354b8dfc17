"""Home Assistant: the hub's residents as devices, found through MQTT discovery."""
