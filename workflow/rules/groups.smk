rule groups:
    input:
        f"{EXP}/counts/longtail.csv",
    output:
        f"{EXP}/groups.json",
    log:
        f"{EXP}/logs/groups.log",
    benchmark:
        f"{EXP}/benchmarks/groups.tsv"
    conda:
        ENV
    params:
        edges=" ".join(str(e) for e in config["groups"]["edges"]),
        beta=config["groups"]["beta"],
    shell:
        "python -m bags groups --counts {input} --edges {params.edges} --beta {params.beta} "
        "--out {output} 2> {log}"
