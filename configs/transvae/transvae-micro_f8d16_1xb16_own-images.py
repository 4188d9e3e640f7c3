# The micro TransVAE f8d16 of the 10-minute CPU demo trained and evaluated on a folder of your own images (read, never
# written): `bash scripts/train_own_images.sh DIR`, or tools/train.py / tools/test.py with `--data-root DIR`.
# Layouts (SplitImageFolderDataset, transvae/datasets/split_image_folder.py): DIR/train/ + DIR/val/, or a flat folder
# (images anywhere below DIR) of which 10% are held out for validation by a stable hash of each file's path.
# Metrics are "on your images": not comparable to the bundled-photo or published numbers.
_base_ = ['./transvae-micro_f8d16_1xb16-10min_photos.py']

dataset_type = 'SplitImageFolderDataset'
data_root = 'data/own_images'  # replaced by --data-root DIR

__split = dict(type=dataset_type, data_root=data_root, layout='auto', val_fraction=0.1)
# min_length: an epoch lists at least 3200 crops (200 iterations at batch 16), however few images the folder has
# (IterBasedTrainLoop pauses 2 s at every epoch end). Crops of images smaller than 64 px are reflection-padded.
train_dataloader = dict(
    dataset=dict(_delete_=True, split='train', min_length=3200, pipeline=_base_.train_dataloader.dataset.pipeline,
                 **__split))
val_dataloader = dict(
    dataset=dict(_delete_=True, split='val', test_mode=True, pipeline=_base_.test_pipeline, **__split))
test_dataloader = val_dataloader
