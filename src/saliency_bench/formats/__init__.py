"""The files the stages pass between them, one module per format. Each module owns its field
names, its writer and its readers (whole and partial); every other module imports them.

- `image_table`: results/images.csv, the images of the run and their shards (stage `images`);
- `masks`: RISE mask sets, HDF5 (stage `masks`);
- `saliency`: saliency maps of one method configuration and shard, HDF5 (stage `explain`);
- `records`: per-image AUCs and baseline probabilities, CSV (stage `evaluate`);
- `curves`: deletion and insertion curves, HDF5 (stage `evaluate`);
- `tables`: per_image.csv and summary.csv (stage `aggregate`);
- `evidence`: the user's (or the demo's) evidence masks, PNG, read by the localisation and the `evidence` row.
`hdf5` holds what the HDF5 formats share: the string type and one way to open a file; `json_files`
reads the small text and JSON side files (file lists, the plan, forward settings) with one-line errors.
"""
