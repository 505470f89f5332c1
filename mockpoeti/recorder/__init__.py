"""`mockpoeti record`: a proxy in front of the real gateway (`proxy`) and the
pure translation of what it relayed into a scenario file (`to_scenario`)."""
