# Training. Checkpoints live under checkpoints/, which Snakemake never deletes: a failed or
# killed job resumes from its last epoch when the DAG is run again.


rule train_baseline:
    input:
        train=f"{EXP}/data/{{dataset}}/train.json",
        images=f"{EXP}/data/{{dataset}}/images",
        pretrained=pretrained_weights,
    output:
        model=f"{EXP}/runs/{{dataset}}/baseline/model.pt",
        log=f"{EXP}/runs/{{dataset}}/baseline/train_log.csv",
    log:
        f"{EXP}/logs/train/{{dataset}}_baseline.log",
    benchmark:
        f"{EXP}/benchmarks/train/{{dataset}}_baseline.tsv"
    wildcard_constraints:
        dataset=datasets_from("synthetic", "lvis", "coco"),
    conda:
        ENV
    threads: config["threads"]
    resources:
        **job_resources("train", RES["gpu"]),
    params:
        arch=as_json(config["model"]),
        train=as_json(config["baseline"]),
        work_dir=lambda wc: f"{EXP}/checkpoints/{wc.dataset}/baseline",
        pretrained=lambda wc, input: (
            f"--pretrained {input.pretrained}" if input.pretrained else ""
        ),
        data=dataset_options,
        launcher=launcher(),
    shell:
        "{params.launcher} train --annotations {input.train} --images {input.images} "
        "{params.data} --arch {params.arch} {params.pretrained} --train {params.train} "
        "--out {output.model} --epoch-log {output.log} --work-dir {params.work_dir} "
        "--threads {threads} 2> {log}"


rule import_coco_model:
    input:
        weights=(
            download_path("r50_fpn_coco")
            if "r50_fpn_coco" in config["downloads"]
            else []
        ),
        train=f"{EXP}/data/{{dataset}}/train.json",
    output:
        model=f"{EXP}/runs/{{dataset}}/baseline/model.pt",
    log:
        f"{EXP}/logs/train/{{dataset}}_import.log",
    wildcard_constraints:
        dataset=datasets_from("coco_pretrained"),
    conda:
        ENV
    params:
        arch=as_json(config["model"]),
    shell:
        "python -m bags import-coco --weights {input.weights} --annotations {input.train} "
        "--arch {params.arch} --out {output.model} 2> {log}"


rule train_bags:
    input:
        train=f"{EXP}/data/longtail/train.json",
        images=f"{EXP}/data/longtail/images",
        baseline=f"{EXP}/runs/longtail/baseline/model.pt",
        groups=f"{EXP}/groups.json",
    output:
        model=f"{EXP}/runs/longtail/bags/model.pt",
        log=f"{EXP}/runs/longtail/bags/train_log.csv",
    log:
        f"{EXP}/logs/train/longtail_bags.log",
    benchmark:
        f"{EXP}/benchmarks/train/longtail_bags.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        **job_resources("train", RES["gpu"]),
    params:
        train=as_json(config["bags"]),
        work_dir=f"{EXP}/checkpoints/longtail/bags",
        data=f"--on-bad {on_bad('longtail')} --image-paths {image_paths('longtail')}",
        launcher=launcher(),
    shell:
        "{params.launcher} train --annotations {input.train} --images {input.images} "
        "{params.data} --init {input.baseline} --groups {input.groups} "
        "--train {params.train} --out {output.model} --epoch-log {output.log} "
        "--work-dir {params.work_dir} --threads {threads} 2> {log}"
