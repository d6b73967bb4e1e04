"""The lab: data, tasks, experiments, the study, plots and advice."""
