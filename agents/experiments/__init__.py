"""The experiments room: many runs of the one runner (sweeps, Ray Tune, search) and their aggregate
statistics (IQM, intervals, profiles). It sits above the families and the registry.
"""
