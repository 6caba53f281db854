"""Data for training and scoring: used by `vidderain.train` and by the jobs that score (bench, evaluate).

- `pairs`: rainy and clean images paired by folder and file name;
- `patches`: a fixed validation split and batches of random aligned crops for training;
- `synth`: synthetic rain over clean images.
"""
