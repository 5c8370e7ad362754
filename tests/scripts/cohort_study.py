"""A round of a pruning study with cohorts on, for the cohort tests: train, prune, finetune, evaluate.

Run as ``python cohort_study.py DIRECTORY``; ``COHORT_STUDY`` (JSON) gives
``replicates`` (default 4), ``max_cohort`` (default 8; null: cohorts off),
``model`` (default ``lenet5``), ``epochs`` (default 2) and ``checkpoint_every``
(Train's option, default 600). Prints, as JSON, every state's value checksum,
the steps each resumed from, and the run's summary line's counts.
"""

import json
import os
import sys

import prunelab as pl
from prunelab.recipes import ModelState, Prune, Train, evaluate

if __name__ == "__main__":
    options = {"replicates": 4, "max_cohort": 8, "model": "lenet5", "epochs": 2, "checkpoint_every": 600.0,
               **json.loads(os.environ.get("COHORT_STUDY", "{}"))}
    exp = pl.Experiment(sys.argv[1], ModelState)
    for replicate in range(options["replicates"]):
        root = exp.spawn_new_tree(dataset_name="digits", model_name=options["model"], replicate=replicate)
        trained = Train(epochs=options["epochs"], lr=0.01 + 0.002 * replicate, batch_size=64, optimizer="adam",
                        weight_decay=0.0, checkpoint_every=options["checkpoint_every"])(root)
        for technique in ("global_magnitude", "l1_unstructured"):
            pruned = Prune(technique=technique, amount=0.7)(trained)
            evaluate(Train(epochs=1, lr=0.001, batch_size=64, optimizer="adam", treatment="finetune")(pruned))
    report = exp.run(executor=pl.LocalExecutor(max_cohort=options["max_cohort"]))
    print(json.dumps({"states": {n.id: n.record["values_checksum"] for n in exp.graph.nodes},
                      "series": {n.id: n.record.get("series") for n in exp.graph.nodes},
                      "resumed": {n.id: n.record.get("resumed", []) for n in exp.graph.nodes},
                      "computed": len(report.done), "elsewhere": len(report.elsewhere)}))
