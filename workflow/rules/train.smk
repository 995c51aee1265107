# Training. Checkpoints live under checkpoints/, which Snakemake never deletes: a failed or
# killed job resumes from its last epoch when the DAG is run again.


rule train_baseline:
    input:
        train=f"{EXP}/data/{{dataset}}/train.json",
        images=f"{EXP}/data/{{dataset}}/images",
    output:
        model=f"{EXP}/runs/{{dataset}}/baseline/model.pt",
        log=f"{EXP}/runs/{{dataset}}/baseline/train_log.csv",
    log:
        f"{EXP}/logs/train/{{dataset}}_baseline.log",
    benchmark:
        f"{EXP}/benchmarks/train/{{dataset}}_baseline.tsv"
    conda:
        ENV
    threads: config["threads"]
    params:
        arch=as_json(config["model"]),
        train=as_json(config["baseline"]),
        work_dir=lambda wc: f"{EXP}/checkpoints/{wc.dataset}/baseline",
    shell:
        "python -m bags train --annotations {input.train} --images {input.images} "
        "--arch {params.arch} --train {params.train} --out {output.model} "
        "--log {output.log} --work-dir {params.work_dir} --threads {threads} 2> {log}"


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
    params:
        train=as_json(config["bags"]),
        work_dir=f"{EXP}/checkpoints/longtail/bags",
    shell:
        "python -m bags train --annotations {input.train} --images {input.images} "
        "--init {input.baseline} --groups {input.groups} --train {params.train} "
        "--out {output.model} --log {output.log} --work-dir {params.work_dir} "
        "--threads {threads} 2> {log}"
