__version__ = "0.1.0"

def __getattr__(name):
    "Import the Python API lazily: `sat2cap.load` (and `sat2cap.Model`) without loading torch at `import sat2cap`."
    if name in ("load", "Model"):
        from . import imagery
        return getattr(imagery, name)
    raise AttributeError(f"module 'sat2cap' has no attribute {name!r}")
