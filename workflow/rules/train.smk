# Training. Checkpoints live under checkpoints/, which Snakemake never deletes: a failed or
# killed job resumes from its last step when the DAG is run again.


rule train:
    input:
        train=f"{EXP}/data/{{dataset}}/train.json",
        images=f"{EXP}/data/{{dataset}}/images",
        counts=f"{EXP}/counts/{{dataset}}.csv",
        start=start_model,
        groups=groups_file,
    output:
        model=run_file("{dataset}", "{method}", "{seed}", "model.pt"),
        log=run_file("{dataset}", "{method}", "{seed}", "train_log.csv"),
    log:
        f"{EXP}/logs/train/{{dataset}}_{{method}}_seed{{seed}}.log",
    benchmark:
        f"{EXP}/benchmarks/train/{{dataset}}_{{method}}_seed{{seed}}.tsv"
    wildcard_constraints:
        dataset=datasets_from("synthetic", "lvis", "coco"),
        method=pattern(methods_by_path("train")),
    priority: lambda wc: training_priority(wc.method)
    conda:
        ENV
    threads: lambda wc: training_threads(wc.dataset)
    resources:
        **job_resources("train", RES["gpu"]),
    params:
        arch=as_json(config["model"]),
        settings=lambda wc: as_json(
            {**settings_of(entry_of(wc.dataset, wc.method)), "seed": int(wc.seed)}
        ),
        method=lambda wc: as_json(method_spec(entry_of(wc.dataset, wc.method))),
        work_dir=lambda wc: f"{EXP}/checkpoints/{wc.dataset}/{wc.method}/seed{wc.seed}",
        start=lambda wc, input: ["--start", input.start] if input.start else [],
        groups=lambda wc, input: ["--groups-file", input.groups] if input.groups else [],
        data=data_options,
        train_filter=lambda wc: train_filter(wc.dataset),
        launcher=launcher(),
    shell:
        "exec {params.launcher} train --annotations {input.train:q} --images {input.images:q} "
        "--counts {input.counts:q} {params.data:q} --train-filter {params.train_filter:q} --arch {params.arch:q} {params.start:q} "
        "{params.groups:q} --settings {params.settings:q} --method {params.method:q} "
        "--out {output.model:q} --epoch-log {output.log:q} --work-dir {params.work_dir:q} "
        "--threads {threads} 2> {log:q}"


rule import_coco_model:
    input:
        weights=(
            download_path("r50_fpn_coco")
            if "r50_fpn_coco" in config["downloads"]
            else []
        ),
        train=f"{EXP}/data/{{dataset}}/train.json",
    output:
        model=run_file("{dataset}", "baseline", "{seed}", "model.pt"),
    log:
        f"{EXP}/logs/train/{{dataset}}_import_seed{{seed}}.log",
    wildcard_constraints:
        dataset=datasets_from("coco_pretrained"),
    conda:
        ENV
    params:
        arch=as_json(config["model"]),
    shell:
        "exec python -m bags import-coco --weights {input.weights:q} --annotations {input.train:q} "
        "--arch {params.arch:q} --out {output.model:q} 2> {log:q}"
