"""Prepare one fcnjax dataset as array_record shards that ``tfds.data_source`` reads.

    python -m fcnjax.data.prepare camvid --manual_dir /data/CamVid --tfds_data_dir ~/tensorflow_datasets
    python -m fcnjax.data.prepare voc_segmentation/2012 --manual_dir /data/VOCdevkit ...
    python -m fcnjax.data.prepare segmentation_folder/mine --manual_dir /data/mine \
        --folder.mask binary --folder.void 128

Nothing downloads: ``manual_dir`` holds the dataset as distributed. tfds draws a progress bar
per split; at the end each split's example count and any skipped files (``--skip_bad``) are
printed. A missing folder or a bad file is one line naming it (``--debug`` shows the
traceback).
"""

from __future__ import annotations

import argparse
import os
import sys

import tensorflow_datasets as tfds

from fcnjax.data import builders
from fcnjax.data.builders import folder
from fcnjax.run import errors


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m fcnjax.data.prepare",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help=f"builder[/config], one of {', '.join(builders.NAMES)}")
    parser.add_argument("--manual_dir", required=True, help="the dataset as distributed")
    parser.add_argument("--tfds_data_dir", default=None, help="where tfds datasets live, "
                        "as config.input.tfds_data_dir (default: tfds' own, "
                        "~/tensorflow_datasets)")
    parser.add_argument("--skip_bad", action="store_true", help="leave out (and list) bad "
                        "files instead of stopping at the first")
    for field, default in folder.FolderConfig.defaults().items():
        parser.add_argument(f"--folder.{field}", dest=f"folder_{field}", default=default,
                            type=type(default) if default is not None else str,
                            help=f"segmentation_folder only (default {default!r})")
    return parser.parse_args(errors.renamed_flags(argv, {"--data_dir": "--tfds_data_dir"},
                                                  "fcnjax.data.prepare"))


def make_builder(args: argparse.Namespace) -> tfds.core.DatasetBuilder:
    """The builder named by ``args.name`` (a FolderConfig from the --folder.* flags)."""
    name, _, config = args.name.partition("/")
    kwargs = {"data_dir": args.tfds_data_dir, "skip_bad": args.skip_bad}
    if name == folder.SegmentationFolder.name:
        fields = {f: getattr(args, f"folder_{f}") for f in folder.FolderConfig.defaults()}
        return folder.SegmentationFolder(config=folder.FolderConfig(name=config or "default",
                                                                    **fields), **kwargs)
    if name not in builders.NAMES:
        raise SystemExit(f"unknown dataset {name!r}; choose one of {', '.join(builders.NAMES)}")
    return tfds.builder(args.name, **kwargs)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = errors.debugging(argv)
    with errors.one_line_errors("fcnjax.data.prepare", debug):
        return prepare(parse(argv))


def prepare(args: argparse.Namespace) -> int:
    """Prepare the dataset ``args`` name; print its splits and any skipped files."""
    builder = make_builder(args)
    if not os.path.isdir(args.manual_dir) or not os.listdir(args.manual_dir):
        how = " ".join(str(builder.MANUAL_DOWNLOAD_INSTRUCTIONS or "").split())
        raise FileNotFoundError(f"--manual_dir {args.manual_dir} does not exist or is empty: "
                                f"{how or 'give the folder the dataset was unpacked to'}")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=args.manual_dir))
    print(f"{builder.name} prepared in {builder.data_dir}")
    for split, info in builder.info.splits.items():
        print(f"  {split}: {info.num_examples} examples")
    if builder.skipped:
        print(f"skipped {len(builder.skipped)} bad example(s):")
        for name, reason in builder.skipped:
            print(f"  {name}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
