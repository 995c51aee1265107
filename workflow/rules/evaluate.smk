rule infer:
    input:
        model=f"{EXP}/runs/{{dataset}}/{{method}}/seed{{seed}}/model.pt",
        val=f"{EXP}/data/{{dataset}}/val.json",
        images=f"{EXP}/data/{{dataset}}/images",
    output:
        f"{EXP}/runs/{{dataset}}/{{method}}/seed{{seed}}/detections.json",
    log:
        f"{EXP}/logs/infer/{{dataset}}_{{method}}_seed{{seed}}.log",
    benchmark:
        f"{EXP}/benchmarks/infer/{{dataset}}_{{method}}_seed{{seed}}.tsv"
    wildcard_constraints:
        method=pattern(TRAINED),
    conda:
        ENV
    threads: config["threads"]
    resources:
        **job_resources("infer", min(RES["gpu"], 1)),
    params:
        score_thresh=config["inference"]["score_thresh"],
        max_dets=config["inference"]["max_dets"],
        batch_size=config["inference"]["batch_size"],
        workers=config["inference"]["workers"],
        data=dataset_options,
    shell:
        "python -m bags infer --model {input.model} --annotations {input.val} "
        "--images {input.images} {params.data} "
        "--score-thresh {params.score_thresh} --max-dets {params.max_dets} "
        "--batch-size {params.batch_size} --workers {params.workers} --threads {threads} "
        "--out {output} 2> {log}"


rule evaluate:
    input:
        val=f"{EXP}/data/{{dataset}}/val.json",
        detections=f"{EXP}/runs/{{dataset}}/{{method}}/seed{{seed}}/detections.json",
        counts=f"{EXP}/counts/{{dataset}}.csv",
    output:
        f"{EXP}/runs/{{dataset}}/{{method}}/seed{{seed}}/metrics.json",
    log:
        f"{EXP}/logs/evaluate/{{dataset}}_{{method}}_seed{{seed}}.log",
    benchmark:
        f"{EXP}/benchmarks/evaluate/{{dataset}}_{{method}}_seed{{seed}}.tsv"
    conda:
        ENV
    resources:
        **job_resources("eval"),
    params:
        edges=" ".join(str(e) for e in config["groups"]["edges"]),
        max_dets=config["inference"]["max_dets"],
        backend=config["evaluation"]["backend"],
    shell:
        "python -m bags evaluate --annotations {input.val} --detections {input.detections} "
        "--counts {input.counts} --edges {params.edges} --max-dets {params.max_dets} "
        "--backend {params.backend} --out {output} 2> {log}"


rule norms:
    input:
        model=f"{EXP}/runs/{{dataset}}/{{method}}/seed{{seed}}/model.pt",
        counts=f"{EXP}/counts/{{dataset}}.csv",
    output:
        f"{EXP}/runs/{{dataset}}/{{method}}/seed{{seed}}/weight_norms.csv",
    log:
        f"{EXP}/logs/norms/{{dataset}}_{{method}}_seed{{seed}}.log",
    benchmark:
        f"{EXP}/benchmarks/norms/{{dataset}}_{{method}}_seed{{seed}}.tsv"
    wildcard_constraints:
        method=pattern(TRAINED),
    conda:
        ENV
    shell:
        "python -m bags norms --model {input.model} --counts {input.counts} --out {output} 2> {log}"
