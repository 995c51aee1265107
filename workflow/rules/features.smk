# Classifier-level methods on the frozen baseline's features, computed once per seed and kept
# (a later method reuses them; delete cache/ to reclaim the space).


rule cache_features:
    input:
        model=run_file("longtail", "baseline", "{seed}", "model.pt"),
        train=f"{EXP}/data/longtail/train.json",
        val=f"{EXP}/data/longtail/val.json",
        images=f"{EXP}/data/longtail/images",
    output:
        train=f"{EXP}/cache/seed{{seed}}/train.pt",
        val=f"{EXP}/cache/seed{{seed}}/val.pt",
        heldout=f"{EXP}/cache/seed{{seed}}/heldout.pt",
        heldout_json=f"{EXP}/cache/seed{{seed}}/heldout.json",
    log:
        f"{EXP}/logs/cache/seed{{seed}}.log",
    benchmark:
        f"{EXP}/benchmarks/cache/seed{{seed}}.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        **job_resources("infer", min(RES["gpu"], 1)),
    params:
        out_dir=lambda wc, output: os.path.dirname(output.train),
        heldout=config["heldout"],
        data=f"--on-bad {on_bad('longtail')} --image-paths {image_paths('longtail')}",
        batch_size=config["inference"]["batch_size"],
    shell:
        "python -m bags cache --model {input.model} --annotations {input.train} "
        "--val {input.val} --images {input.images} {params.data} --heldout {params.heldout} "
        "--seed {wildcards.seed} --batch-size {params.batch_size} --out-dir {params.out_dir} "
        "--threads {threads} 2> {log}"


rule fit_head:
    input:
        baseline=run_file("longtail", "baseline", "{seed}", "model.pt"),
        counts=f"{EXP}/counts/longtail.csv",
        cache=rules.cache_features.output,
    output:
        model=f"{EXP}/runs/longtail/{{method}}/seed{{seed}}/model.pt",
        log=f"{EXP}/runs/longtail/{{method}}/seed{{seed}}/train_log.csv",
        detections=f"{EXP}/runs/longtail/{{method}}/seed{{seed}}/detections.json",
        norms=f"{EXP}/runs/longtail/{{method}}/seed{{seed}}/weight_norms.csv",
    log:
        f"{EXP}/logs/train/longtail_{{method}}_seed{{seed}}.log",
    benchmark:
        f"{EXP}/benchmarks/train/longtail_{{method}}_seed{{seed}}.tsv"
    wildcard_constraints:
        method=pattern(CACHED),
    conda:
        ENV
    threads: config["threads"]
    resources:
        **job_resources("infer"),
    params:
        cache_dir=lambda wc, input: os.path.dirname(input.cache[0]),
        train=lambda wc: as_json({**settings_of(wc.method), "seed": int(wc.seed)}),
        method=lambda wc: as_json(spec_of(wc.method)),
        posthoc=lambda wc: as_json(METHODS[wc.method].get("posthoc", {})),
        edges=" ".join(str(e) for e in config["groups"]["edges"]),
        score_thresh=config["inference"]["score_thresh"],
        max_dets=config["inference"]["max_dets"],
    shell:
        "python -m bags head --baseline {input.baseline} --cache-dir {params.cache_dir} "
        "--counts {input.counts} --method {params.method} --posthoc {params.posthoc} "
        "--train {params.train} --edges {params.edges} "
        "--score-thresh {params.score_thresh} --max-dets {params.max_dets} "
        "--out-model {output.model} --out-log {output.log} "
        "--out-detections {output.detections} --out-norms {output.norms} "
        "--threads {threads} 2> {log}"
