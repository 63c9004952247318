"""Prints the training FLOPs of the models of the ELECTRA paper's table.

    python3 flops_computation.py

One line `<model-name> <flops>` per model, as the original script printed; the
formula lives in `model/flops.py`.
"""
from model import flops


def main() -> None:
  for name, count in flops.paper_table().items():
    print(name, count)


if __name__ == "__main__":
  main()
