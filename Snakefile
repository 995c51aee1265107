from snakemake.utils import min_version, validate

min_version("9.0")


# The default experiment, unless --configfile names another (configs are not merged).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/counts.smk"
include: "workflow/rules/groups.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/tables.smk"


# Light or network-bound steps stay on the submitting machine under a cluster executor.
localrules:
    all,
    comparison,
    weight_norms,
    weight_norms_bags,
    claims,
    download,
    lvis_annotations,
    lvis_images,
    user_dataset,
    user_val,
    coco_train_annotations,
    coco_image_folder,
    import_coco_model,
    count,
    groups,
    norms,
    comparison_table,
    plot_weight_norms,
    plot_weight_norms_bags,
    check_claims,


rule all:
    default_target: True
    input:
        TARGETS["comparison"],
        TARGETS["weight_norms"],
        TARGETS["weight_norms_bags"],
        TARGETS["claims"],


rule comparison:
    input:
        TARGETS["comparison"],


rule weight_norms:
    input:
        TARGETS["weight_norms"],


rule weight_norms_bags:
    input:
        TARGETS["weight_norms_bags"],


rule claims:
    input:
        TARGETS["claims"],
