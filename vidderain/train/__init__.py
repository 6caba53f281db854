"""Training: a resumable run of a registered network on image pairs.

- `trainer`: the run (TrainSettings, Trainer): the loop, validation, export of the best model;
- `checkpoint`: the run folder beside the model (`MODEL.run/`) and the checkpoint in it;
- `distribution`: how one run spreads over devices and machines;
- `losses`: the training losses; `plots`: the loss and PSNR curve.
"""
