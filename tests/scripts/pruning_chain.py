"""Train → prune → finetune with the standard recipes on the digits, for the checkpoint tests.

Run as ``python pruning_chain.py DIRECTORY``; ``PRUNING_CHAIN`` (JSON) gives
the Train options (e.g. ``{"checkpoint_every": 1e-9}``: a checkpoint after
every step; ``"mode": "gradual"`` or ``"rigl"`` trains one model with gradual
pruning or RigL instead of the chain, ``"loader"`` one model on augmented data
through loader workers, ``"num_workers"`` of them). Prints the trained states' checksums as JSON.
"""

import json
import os
import sys

import prunelab as pl
from prunelab.prune import RigL, cubic
from prunelab.recipes import ModelState, Prune, Train

if __name__ == "__main__":
    options = json.loads(os.environ.get("PRUNING_CHAIN", "{}"))
    exp = pl.Experiment(sys.argv[1], ModelState)
    root = exp.spawn_new_tree(dataset_name="digits", model_name="lenet300100", replicate=0)
    mode = options.pop("mode", "chain")
    if mode == "loader":  # augmented batches from loader workers
        root = exp.spawn_new_tree(dataset_name="digits", model_name="lenet5", replicate=0,
                                  augmentation=[{"name": "random_crop", "padding": 2}, {"name": "hflip", "p": 0.5}])
        node = Train(epochs=2, lr=0.05, batch_size=128, **options)(root)
        exp.run()
        print(json.dumps({mode: [node.record["values_checksum"], node.record.get("series"),
                                 node.record.get("resumed", [])]}))
        sys.exit(0)
    if mode != "chain":  # pruning while training instead: gradual (events at steps 2, 8, 14, 20) or RigL
        sparse = {"prune_schedule": cubic(0.0, 0.8, 2, 20, 6)} if mode == "gradual" else \
            {"dynamic_sparsity": RigL(0.8, 3)}
        node = Train(epochs=2, lr=0.05, batch_size=128, **sparse, **options)(root)
        exp.run()
        print(json.dumps({mode: [node.record["values_checksum"], node.record.get("series"),
                                 node.record.get("resumed", [])]}))
        sys.exit(0)
    trained = Train(epochs=2, lr=0.05, batch_size=128, schedule="cosine", **options)(root)
    pruned = Prune(technique="global_magnitude", amount=0.8)(trained)
    finetuned = Train(epochs=2, lr=0.02, batch_size=128, treatment="finetune", **options)(pruned)
    exp.run()
    print(json.dumps({n: [node.record["values_checksum"], node.record.get("series"), node.record.get("resumed", [])]
                      for n, node in (("trained", trained), ("finetuned", finetuned))}))
