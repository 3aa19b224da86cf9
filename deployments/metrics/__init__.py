"""How teams ship: the DORA metrics and approval wait times per service and environment."""
