"""Settings of one area each, pulled into ``portal.settings`` with one star import per area."""
