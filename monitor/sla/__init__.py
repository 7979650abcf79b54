"""The pure SLA core: business-hours calendars, policies and clock evaluation."""
