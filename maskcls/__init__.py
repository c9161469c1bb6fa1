"""maskcls: the 18-class face-mask / gender / age classification toolkit (library, CLI and studio)."""
__version__ = "0.1.0"
