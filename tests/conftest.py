import os
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("SAT2CAP_NO_PROGRESS", "1")
