import os
import shlex
import sys
from pathlib import Path

import yaml
from snakemake.utils import min_version, validate

min_version("9.0")

# The figure table is read from the package's source, which needs nothing beyond Python.
SRC = str(Path(workflow.basedir, "src"))
sys.path.insert(0, SRC)
from bags.analysis.figure_table import FIGURES as FIGURE_TABLE
from bags.config_checks import check_config_file, non_finite
from bags.schema import SCHEMA_FILE

# Every job imports the package from this source folder, also in a conda environment, which
# holds only the dependencies (envs/bags.yaml is copied to .snakemake/conda/ before it is
# built, so no path in it can point here). The prefix is formatted: braces are doubled. With
# bash it keeps Snakemake's own default prefix, `set -euo pipefail; `.
STRICT = os.path.basename(shell.get_executable() or "") == "bash"
QUOTED_SRC = shlex.quote(SRC).replace("{", "{{").replace("}", "}}")
shell.prefix(
    ("set -euo pipefail; " if STRICT else "")
    + f"export PYTHONPATH={QUOTED_SRC}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
)

# The methods table every experiment starts from, then the default experiment unless
# --configfile names others (merged in order over the table, the default left out:
# configs/lvis_smoke.yaml is layered over a real-LVIS config).
METHODS_TABLE = Path(workflow.basedir, "configs/methods.yaml")


configfile: METHODS_TABLE


if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


# The rows in the table's order, then a config's own rows in theirs (--configfile files are read
# before the table); a method set to null by a later config file is dropped.
if isinstance(config.get("methods"), dict):
    _order = [*yaml.safe_load(METHODS_TABLE.read_text())["methods"], *config["methods"]]
    config["methods"] = {
        n: config["methods"][n]
        for n in dict.fromkeys(_order)
        if config["methods"].get(n) is not None
    }

# `--config seeds=[0,1]` passes the numbers as text.
if isinstance(config.get("seeds"), list):
    config["seeds"] = [
        int(s) if str(s).lstrip("-").isdigit() else s for s in config["seeds"]
    ]

# Plain YAML, no key given twice, every number finite: what the schema cannot see.
DEFAULT_CONFIG = Path(workflow.basedir, "config.yaml")
for _file in [METHODS_TABLE, *(workflow.overwrite_configfiles or [DEFAULT_CONFIG])]:
    check_config_file(_file)
if non_finite(config):
    raise ValueError(
        f"config: {', '.join(non_finite(config))} must be a finite number (not NaN or infinity)"
    )

validate(config, str(SCHEMA_FILE))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/counts.smk"
include: "workflow/rules/groups.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/convergence.smk"


rule all:
    default_target: True
    input:
        [path for paths in TARGETS.values() for path in paths],


# One target per table, figure and the claims: `snakemake --cores all <name>` makes just that.
for _target, _paths in TARGETS.items():

    rule:
        name:
            _target
        input:
            _paths,
        localrule: True


# Light or network-bound steps stay on the submitting machine under a cluster executor
# (figures, tables and claims are local rules where they are defined).
localrules:
    all,
    download,
    lvis_annotations,
    lvis_images,
    user_dataset,
    user_val,
    coco_train_annotations,
    coco_image_folder,
    import_coco_model,
    count,
    heldout,
    groups,
    norms,
