"""Local stand-ins that speak the external systems' real contracts over loopback."""
