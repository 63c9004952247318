"""Install ELECTRA for TensorFlow 2 (editable installs are the expected use)."""
from setuptools import find_packages, setup

setup(
    name="electra-tf2",
    version="0.1.0",
    description=("TensorFlow 2 implementation of ELECTRA and Electric pre-training "
                 "and fine-tuning, faithful to the original TF1 code."),
    python_requires=">=3.10",
    packages=find_packages(include=["util", "util.*", "model", "model.*", "training",
                                    "training.*", "pretrain", "pretrain.*", "finetune",
                                    "finetune.*", "export", "export.*"]),
    py_modules=[
        "configure_pretraining", "configure_finetuning",
        "build_pretraining_dataset", "build_openwebtext_pretraining_dataset",
        "run_pretraining", "run_finetuning", "export_model", "flops_computation",
        "convert_hf", "score_text", "build_vocab",
    ],
    install_requires=[
        "tensorflow>=2.16",
        "numpy",
        "scikit-learn",
        "scipy",
        # model.safetensors for the Hugging Face export/import: tiny, no
        # dependencies, numpy API, what transformers itself reads.
        "safetensors",
    ],
    extras_require={
        # tokenizers too, so that build_vocab.py's tests run rather than skip;
        # import-linter checks that the floors only import downwards (.importlinter).
        "test": ["pytest>=7", "pytest-xdist", "tokenizers>=0.13", "import-linter>=2.1"],
        # Optional: build_vocab.py's WordPiece trainer (Hugging Face tokenizers, Rust).
        "vocab": ["tokenizers>=0.13"],
        # Optional: the figure of experiments/replicate_small.py.
        "experiments": ["matplotlib"],
    },
)
