"""fcnjax's tensorflow-datasets builders; importing this package registers them with tfds.

After ``import fcnjax.data.builders``, ``tfds.builder(name, data_dir=...)`` prepares and
``tfds.data_source(name, data_dir=...)`` reads (array_record, no TensorFlow) each of
``NAMES``. Prepare one from the command line with ``python -m fcnjax.data.prepare``.
"""

from fcnjax.data.builders.camvid import Camvid
from fcnjax.data.builders.common import VOID, BadExample
from fcnjax.data.builders.folder import FolderConfig, SegmentationFolder
from fcnjax.data.builders.isbi2012 import Isbi2012
from fcnjax.data.builders.nyud import NyudV2
from fcnjax.data.builders.pascal_context import PascalContext
from fcnjax.data.builders.sbd import Sbd
from fcnjax.data.builders.sift_flow import SiftFlow
from fcnjax.data.builders.voc import VocSegmentation

# Builders fcnjax registers; "oxford_iiit_pet" (trimaps) comes from the TFDS catalog.
NAMES = ("camvid", "isbi2012", "voc_segmentation", "sbd", "nyud_v2", "sift_flow",
         "pascal_context", "segmentation_folder")
