# Training. Checkpoints live under checkpoints/, which Snakemake never deletes: a failed or
# killed job resumes from its last step when the DAG is run again.


rule train:
    input:
        train=f"{EXP}/data/{{dataset}}/train.json",
        images=f"{EXP}/data/{{dataset}}/images",
        counts=f"{EXP}/counts/{{dataset}}.csv",
        init=init_model,
        pretrained=pretrained_weights,
    output:
        model=f"{EXP}/runs/{{dataset}}/{{method}}/seed{{seed}}/model.pt",
        log=f"{EXP}/runs/{{dataset}}/{{method}}/seed{{seed}}/train_log.csv",
    log:
        f"{EXP}/logs/train/{{dataset}}_{{method}}_seed{{seed}}.log",
    benchmark:
        f"{EXP}/benchmarks/train/{{dataset}}_{{method}}_seed{{seed}}.tsv"
    wildcard_constraints:
        dataset=datasets_from("synthetic", "lvis", "coco"),
        method=pattern(TRAINED),
    conda:
        ENV
    threads: config["threads"]
    resources:
        **job_resources("train", RES["gpu"]),
    params:
        arch=as_json(config["model"]),
        train=lambda wc: as_json({**settings_of(wc.method), "seed": int(wc.seed)}),
        method=lambda wc: as_json(spec_of(wc.method)),
        work_dir=lambda wc: f"{EXP}/checkpoints/{wc.dataset}/{wc.method}/seed{wc.seed}",
        start=lambda wc, input: (
            f"--init {input.init}"
            if input.init
            else f"--pretrained {input.pretrained}" if input.pretrained else ""
        ),
        data=dataset_options,
        launcher=launcher(),
    shell:
        "{params.launcher} train --annotations {input.train} --images {input.images} "
        "{params.data} --arch {params.arch} {params.start} --train {params.train} "
        "--method {params.method} --counts {input.counts} "
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
        model=f"{EXP}/runs/{{dataset}}/baseline/seed{{seed}}/model.pt",
    log:
        f"{EXP}/logs/train/{{dataset}}_import_seed{{seed}}.log",
    wildcard_constraints:
        dataset=datasets_from("coco_pretrained"),
    conda:
        ENV
    params:
        arch=as_json(config["model"]),
    shell:
        "python -m bags import-coco --weights {input.weights} --annotations {input.train} "
        "--arch {params.arch} --out {output.model} 2> {log}"
