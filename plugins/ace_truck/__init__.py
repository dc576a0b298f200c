"""ACE truck eManifest: the X12 309 a truck carrier files with CBP, and the 997, 355 and
350 that come back. Built from CBP's public implementation guides (docs/ace-truck.md)."""
