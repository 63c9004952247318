"""The training engine: the `Trainer`, its graph options, multi-worker start-up, progress
logging and the hparam mechanism of the run configs (above `model/`, below `pretrain/`
and `finetune/`)."""
