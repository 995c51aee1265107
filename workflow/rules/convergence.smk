# The paper's test of converged schedules, on synthetic sets: each run of `convergence.runs`
# trained once more for its whole schedule from its own model (x2), both models scored on a
# tuning split that the generator draws with another seed (never val). Not part of `all`:
# `snakemake --cores all convergence` (add --config 'seeds=[0,1,2]' for three seeds).


rule tuning_split:
    input:
        f"{EXP}/data/{{dataset}}/train.json",
    output:
        val=f"{EXP}/data/{{dataset}}/tuning/val.json",
        images=directory(f"{EXP}/data/{{dataset}}/tuning/images"),
    log:
        f"{EXP}/logs/tuning_split/{{dataset}}.log",
    wildcard_constraints:
        dataset=datasets_from("synthetic"),
    conda:
        ENV
    params:
        data=lambda wc, input: os.path.dirname(input[0]),
        out=lambda wc, output: os.path.dirname(output.val),
        per_class=CONVERGENCE["per_class"],
        seed=CONVERGENCE["seed"],
    shell:
        "exec python -m bags tuning-split --data {params.data:q} --out {params.out:q} "
        "--per-class {params.per_class} --seed {params.seed} 2> {log:q}"


use rule train as train_again with:
    input:
        train=f"{EXP}/data/{{dataset}}/train.json",
        images=f"{EXP}/data/{{dataset}}/images",
        counts=f"{EXP}/counts/{{dataset}}.csv",
        start=run_file("{dataset}", "{method}", "{seed}", "model.pt"),
        groups=groups_file,
    output:
        model=again_file("{dataset}", "{method}", "{seed}", "model.pt"),
        log=again_file("{dataset}", "{method}", "{seed}", "train_log.csv"),
    log:
        f"{EXP}/logs/convergence/{{dataset}}_{{method}}_seed{{seed}}_train.log",
    benchmark:
        f"{EXP}/benchmarks/convergence/{{dataset}}_{{method}}_seed{{seed}}_train.tsv"
    params:
        method=lambda wc: as_json(
            {**method_spec(entry_of(wc.dataset, wc.method)), "last_layer": "loaded"}
        ),
        work_dir=lambda wc: f"{EXP}/checkpoints/convergence/{wc.dataset}/{wc.method}/seed{wc.seed}",


use rule infer as infer_tuning with:
    input:
        model=tested_model,
        val=f"{EXP}/data/{{dataset}}/tuning/val.json",
        images=f"{EXP}/data/{{dataset}}/tuning/images",
    output:
        tuning_file("{dataset}", "{method}", "{seed}", "{which}", "detections.json"),
    log:
        f"{EXP}/logs/convergence/{{dataset}}_{{method}}_seed{{seed}}_{{which}}_infer.log",
    benchmark:
        f"{EXP}/benchmarks/convergence/{{dataset}}_{{method}}_seed{{seed}}_{{which}}_infer.tsv"
    wildcard_constraints:
        which="once|again",


use rule evaluate as evaluate_tuning with:
    input:
        val=f"{EXP}/data/{{dataset}}/tuning/val.json",
        detections=tuning_file(
            "{dataset}", "{method}", "{seed}", "{which}", "detections.json"
        ),
        counts=f"{EXP}/counts/{{dataset}}.csv",
    output:
        tuning_file("{dataset}", "{method}", "{seed}", "{which}", "metrics.json"),
    log:
        f"{EXP}/logs/convergence/{{dataset}}_{{method}}_seed{{seed}}_{{which}}_evaluate.log",
    benchmark:
        f"{EXP}/benchmarks/convergence/{{dataset}}_{{method}}_seed{{seed}}_{{which}}_evaluate.tsv"
    wildcard_constraints:
        which="once|again",


rule convergence_table:
    input:
        lambda wc: [
            e[which] for e in convergence_entries() for which in ("once", "again")
        ],
    output:
        csv=f"{EXP}/tables/convergence.csv",
        md=f"{EXP}/tables/convergence.md",
    log:
        f"{EXP}/logs/tables/convergence.log",
    localrule: True
    conda:
        ENV
    params:
        spec=lambda wc: as_json(
            {"max_gain": CONVERGENCE["max_gain"], "runs": convergence_entries()}
        ),
        stem=lambda wc, output: os.path.splitext(output.csv)[0],
    shell:
        "exec python -m bags convergence --spec {params.spec:q} --out-stem {params.stem:q} 2> {log:q}"


rule convergence:
    input:
        rules.convergence_table.output,
    localrule: True
