"""Run the real TFDS `reddit_tifu` builder offline on its dummy records.

The builder downloads `tifu_all_tokenized_and_filtered.json` (and, for
`long_split`, a split file) with TFDS's download manager. That manager
skips a download whose file is already in its cache: `DOWNLOAD_DIR /
get_dl_fname(url, sha256)` beside a `.INFO` file, with the sha256 the
builder's `checksums.tsv` registers. Placing the dummy records there lets
`download_and_prepare` run unchanged, parsing, filtering and writing
TFRecords as it would for the real 640 MB file.
"""

import json
import pathlib
import shutil

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "reddit_tifu"
FILES = {
    "tifu_all_tokenized_and_filtered.json": "data.jsonl",
    "reddit_tifu_long_splits.json": "split.json",
}


def prepare_download_cache(data_dir):
    """Fill `data_dir/downloads` so that `reddit_tifu` builds from the fixture."""
    from tensorflow_datasets.core.download import resource
    from tensorflow_datasets.datasets.reddit_tifu import reddit_tifu_dataset_builder

    downloads = pathlib.Path(data_dir) / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    for url, info in reddit_tifu_dataset_builder.Builder.url_infos.items():
        cached = downloads / resource.get_dl_fname(url, info.checksum)
        shutil.copy(FIXTURE / FILES[info.filename], cached)
        resource.get_info_path(cached).write_text(
            json.dumps({"urls": [url], "original_fname": info.filename})
        )
    return data_dir
