"""Tiny fake datasets written in each dataset's real layout (never ../shared), and readers."""

import os

import numpy as np
import scipy.io
from PIL import Image

H, W = 6, 8


def rgb(value):
    """A constant RGB image whose pixels say which example it is."""
    return Image.fromarray(np.full((H, W, 3), value, np.uint8))


def mask(values, mode="L"):
    """An (H, W) mask cycling through ``values``."""
    array = np.resize(np.asarray(values, np.uint8), H * W).reshape(H, W)
    if mode == "L":
        return Image.fromarray(array)
    image = Image.new("P", (W, H))
    image.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    image.putdata(array.ravel().tolist())
    return image


def save(image, *parts):
    path = os.path.join(*map(str, parts))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path)
    return path


def write_lines(lines, *parts):
    path = os.path.join(*map(str, parts))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))


def save_mat(path, **arrays):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    scipy.io.savemat(str(path), arrays)


def write_camvid(root, counts=(("train", 2), ("val", 1), ("test", 1))):
    """SegNet's CamVid layout: <split>/, <split>annot/ and <split>.txt with /SegNet paths."""
    for split, count in counts:
        lines = []
        for i in range(count):
            name = f"0001TP_{split}{i}"
            save(rgb(10 * i + 1), root, split, name + ".png")
            save(mask([0, 3, 11, i]), root, split + "annot", name + ".png")
            lines.append(f"/SegNet/CamVid/{split}/{name}.png /SegNet/CamVid/{split}annot/{name}.png")
        write_lines(lines, root, split + ".txt")
    return root


def write_isbi(root, train=2, test=1):
    """zhixuhao/unet's data/membrane layout: train/image, train/label, test (grayscale)."""
    for i in range(train):
        save(Image.fromarray(np.full((H, W), 7 * i, np.uint8)), root, "train", "image", f"{i}.png")
        save(mask([0, 255]), root, "train", "label", f"{i}.png")
    for i in range(test):
        save(Image.fromarray(np.full((H, W), 9, np.uint8)), root, "test", f"{i}.png")
        save(Image.fromarray(np.zeros((H, W), np.uint8)), root, "test", f"{i}_predict.png")
    return root


def read_all(builder, split):
    """Every example of ``split`` as numpy, in order."""
    source = builder.as_data_source(split=split)
    return [source[i] for i in range(len(source))]


def write_nyud(root, counts=(("trainval", 2), ("test", 1))):
    """The FCN reference's data/nyud layout: data/{images,depth,hha}, segmentation/*.mat,
    <split>.txt; 16-bit depth, labels 0 (void) .. 40."""
    index = 5001
    for split, count in counts:
        lines = []
        for i in range(count):
            name = f"img_{index}"
            save(rgb(20 * i + 3), root, "data", "images", name + ".png")
            depth = np.full((H, W), 1000 + 100 * i, np.uint16)
            depth[0, 0] = 0  # unmeasured
            save(Image.fromarray(depth), root, "data", "depth", name + ".png")
            save(rgb(9 + i), root, "data", "hha", name + ".png")
            seg = np.resize(np.uint8([0, 1, 2, 40, i + 3]), H * W).reshape(H, W)
            save_mat(os.path.join(str(root), "segmentation", name + ".mat"), segmentation=seg)
            lines.append(str(index))
            index += 1
        write_lines(lines, root, split + ".txt")
    return root


SIFT_FLOW_SUBDIR = "spatial_envelope_256x256_static_8outdoorcategories"


def write_sift_flow(root, counts=(("trainval", 2), ("test", 1))):
    """SiftFlowDataset.zip's layout with the FCN split lists: Images/, SemanticLabels/ and
    GeoLabels/ (.mat "S": semantic 0 void, 1..33; geometric -1 / 0 void, 1..3)."""
    for split, count in counts:
        names = []
        for i in range(count):
            name = f"coast_{split}{i}"
            save(rgb(30 * i + 4), root, "Images", SIFT_FLOW_SUBDIR, name + ".jpg")
            save_mat(os.path.join(str(root), "SemanticLabels", SIFT_FLOW_SUBDIR, name + ".mat"),
                     S=np.resize(np.int16([0, 1, 33, i + 2]), H * W).reshape(H, W))
            save_mat(os.path.join(str(root), "GeoLabels", SIFT_FLOW_SUBDIR, name + ".mat"),
                     S=np.resize(np.int16([-1, 1, 2, 3]), H * W).reshape(H, W))
            names.append(name)
        write_lines(names, root, split + ".txt")
    return root


def write_user_folder(root, per_split=False, splits=(("train", 2), ("val", 1)), image=rgb,
                      label=lambda n: mask([0, 1, 2, n]), image_ext=".png", mask_ext=".png"):
    """A user's folder dataset (fcnjax.data.image_folder's layout), example n named str(n),
    numbered across splits: images/ + masks/ + splits/<split>.txt, or (``per_split``)
    <split>/image/ + <split>/label/."""
    n = 0
    for split, count in splits:
        names = [str(n + i) for i in range(count)]
        for name in names:
            base = (root, split) if per_split else (root,)
            save(image(int(name)), *base, "image" if per_split else "images", name + image_ext)
            save(label(int(name)), *base, "label" if per_split else "masks", name + mask_ext)
        if not per_split:
            write_lines(names, root, "splits", split + ".txt")
        n += count
    return root


def stack(pages, *parts):
    """A multi-page TIFF of the PIL images ``pages``."""
    path = os.path.join(*map(str, parts))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pages[0].save(path, save_all=True, append_images=list(pages[1:]))
    return path


# Names of PASCAL-Context's labels.txt that are no task class (a few of the 400 others).
PASCAL_CONTEXT_OTHERS = ("accordion", "air conditioner", "clothes tree", "pool table", "zebra")


def write_pascal_context(root, classes, counts=(("train", 2), ("val", 1))):
    """VOC2010 JPEGImages + ImageSets/Main lists with PASCAL-Context's trainval/*.mat
    ("LabelMap": ids of labels.txt), labels.txt and 59_labels.txt ("<id>: <name>" lines).

    ``classes``: the 59 task names, written to 59_labels.txt (tv monitor with a space);
    labels.txt numbers them (table, bedclothes, cloth for diningtable, bedcloth, clothes) and
    PASCAL_CONTEXT_OTHERS alphabetically from 1. Returns {name in labels.txt: id}.
    """
    full = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}
    names = sorted([full.get(c, c) for c in classes] + list(PASCAL_CONTEXT_OTHERS))
    ids = {name: i for i, name in enumerate(names, 1)}
    write_lines([f"{i}: {name}" for name, i in ids.items()], root, "labels.txt")
    write_lines([f"{i}: {'tv monitor' if c == 'tvmonitor' else c}"
                 for i, c in enumerate(classes, 1)], root, "59_labels.txt")
    voc = os.path.join(str(root), "VOC2010")
    picks = ["aeroplane", "table", "cloth", "bedclothes", "wood"]
    for split, count in counts:
        lines = []
        for i in range(count):
            name = f"2008_{split}{i}"
            save(rgb(40 * i + 5), voc, "JPEGImages", name + ".jpg")
            other = PASCAL_CONTEXT_OTHERS[i % len(PASCAL_CONTEXT_OTHERS)]
            row = [ids[p] for p in picks] + [ids[other], 0, 999]  # 999: not in labels.txt
            save_mat(os.path.join(str(root), "trainval", name + ".mat"),
                     LabelMap=np.resize(np.uint16(row), H * W).reshape(H, W))
            lines.append(name)
        write_lines(lines, voc, "ImageSets", "Main", split + ".txt")
    return ids
