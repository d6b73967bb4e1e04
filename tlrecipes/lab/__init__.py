"""The lab: what tlrecipes measures transfer with, and teaches it with.

The kit (`import tlrecipes as tl`) holds what the helpers need at run time;
the lab builds on it, and the kit never imports the lab. The lab holds:

- data and tasks: `ImageSplits` (`imagesplits`), Fashion-MNIST and MNIST
  offline (`offline_data`, on `idx_files`), tensorflow-datasets
  (`tfds_data`), image folders (`folders`), class splits and nested samples
  (`sampling`), inputs for pretrained backbones (`backbone_input`), and the
  transfer tasks (`tasks`);
- the research backbone `small_convnet`, cuttable by block (`backbones`);
- experiments: source models (`sources`, `configs`), from-scratch twins
  (`model_copies`), single runs (`runs`), benefits and the result store
  (`results`), and the Yosinski and Soekhoe studies (`experiments`);
- the study behind `tlrecipes study` (`study`, `study_jobs`,
  `study_summary`, `study_figures`, `study_report`) and `tlrecipes demo`
  (`demo`);
- measurement: one paired-by-seed comparison with its interval and verdict
  (`comparison`), and what produced each result (`record`);
- figures (`plots`), rule-based advice (`advice`) and the command line
  (`cli`).

Its public names are exported here lazily: importing `tlrecipes.lab` imports
none of its modules (and no Keras), and `lab.get_task(...)` or
`from tlrecipes.lab import get_task` imports only the module that defines the
name.
"""

import importlib

# Public name -> the lab module that defines it.
_EXPORTS = {
    # data and tasks
    "ImageSplits": "imagesplits",
    "StreamingSplits": "imagesplits",
    "read_idx": "idx_files",
    "load_fashion_mnist": "offline_data",
    "load_mnist": "offline_data",
    "load_tfds": "tfds_data",
    "load_tfds_arrays": "tfds_data",
    "load_image_folder": "folders",
    "random_class_split": "sampling",
    "split_by_class": "sampling",
    "select_classes": "sampling",
    "sample_per_class": "sampling",
    "sample_indices_per_class": "sampling",
    "train_val_split": "sampling",
    "train_val_indices": "sampling",
    "to_backbone_input": "backbone_input",
    # what the recipes take in
    "check_image_folder": "image_files",
    "check_out_folder": "recipe_inputs",
    "checkpoint_run_key": "recipe_inputs",
    "build_base": "recipe_inputs",
    "saved_base": "recipe_inputs",
    "copy_base_weights": "recipe_inputs",
    "base_layer_name": "recipe_inputs",
    "cut_base": "recipe_inputs",
    "first_batches": "recipe_inputs",
    "epochs_or_auto": "recipe_inputs",
    "exit_on_value_error": "recipe_inputs",
    "folder_key": "fingerprints",
    "Task": "tasks",
    "get_task": "tasks",
    "list_tasks": "tasks",
    "register_task": "tasks",
    # the research backbone
    "small_convnet": "backbones",
    "block_names": "backbones",
    "cut_after_block": "backbones",
    # experiments
    "SourceConfig": "configs",
    "TrainConfig": "configs",
    "SourceModel": "sources",
    "train_source_model": "sources",
    "load_source_model": "sources",
    "default_cache_dir": "sources",
    "scratch_twin": "model_copies",
    "transfer_benefit": "results",
    "aggregate": "results",
    "ResultStore": "results",
    "load_rows": "results",
    "size_sweep": "experiments",
    "ScratchComparison": "experiments",
    "transfer_vs_scratch": "experiments",
    "transferability_by_layer": "experiments",
    # measurement
    "Comparison": "comparison",
    "compare": "comparison",
    "compare_to_baseline": "comparison",
    "compare_or_note": "run_summary",
    "compare_to_baseline_or_note": "run_summary",
    "scores_by_seed": "run_summary",
    "what_this_run_showed": "run_summary",
    "pick_best": "comparison",
    "BestOnValidation": "finetune_controls",
    "finetune_controls_cell": "finetune_controls",
    "check_seeds": "comparison",
    "min_seeds": "comparison",
    "summary_table": "comparison",
    "SeedWarning": "comparison",
    "provenance": "record",
    "header_line": "record",
    "device_description": "record",
    "DirtyTreeError": "record",
    # figures, advice, the study and the demo
    "plot_learning_curves": "plots",
    "plot_size_sweep": "plots",
    "plot_transfer_vs_scratch": "plots",
    "plot_transferability": "plots",
    "plot_examples": "data_figures",
    # notebook set-up
    "get_source": "notebook_setup",
    "target_arrays": "notebook_setup",
    "show": "notebook_setup",
    "run_footer": "notebook_setup",
    "Advice": "advice",
    "advise": "advice",
    "study_cell": "study_cells",
    "run_study": "study",
    "StudyError": "study",
    "StudyResult": "study_report",
    "run_demo": "demo",
}

__all__ = sorted(_EXPORTS, key=str.lower)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
