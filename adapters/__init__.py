"""First-party s321 transport adapters."""
