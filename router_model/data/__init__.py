"""Training and evaluation data: FlashRAG QA sets in the reference parquet schema."""

from router_model.data.flashrag import (
    EVAL_SETS,
    HUB_REPO,
    TRAIN_SETS,
    HubSource,
    LocalSource,
    QASource,
    eval_split,
)
from router_model.data.prepare import (
    EVAL_PER_SET,
    SEED,
    TRAIN_PER_SET,
    PreparedFile,
    prepare,
    read_parquet,
    sample_rows,
    to_reference_row,
    write_parquet,
)

__all__ = [
    "EVAL_PER_SET",
    "EVAL_SETS",
    "HUB_REPO",
    "SEED",
    "TRAIN_PER_SET",
    "TRAIN_SETS",
    "HubSource",
    "LocalSource",
    "PreparedFile",
    "QASource",
    "eval_split",
    "prepare",
    "read_parquet",
    "sample_rows",
    "to_reference_row",
    "write_parquet",
]
