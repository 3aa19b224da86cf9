"""Settings of one area each, read from the environment and pulled into ``portal.settings``."""
