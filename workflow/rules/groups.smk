# The BAGS groups of each BAGS row (the config's groups, or an ablation's), from the counts.


rule groups:
    input:
        f"{EXP}/counts/longtail.csv",
    output:
        f"{EXP}/groups/{{method}}.json",
    log:
        f"{EXP}/logs/groups/{{method}}.log",
    benchmark:
        f"{EXP}/benchmarks/groups/{{method}}.tsv"
    wildcard_constraints:
        method=pattern([n for n, m in METHODS.items() if m["loss"] == "bags"]),
    conda:
        ENV
    params:
        edges=lambda wc: groups_of(METHODS[wc.method])["edges"],
        beta=lambda wc: groups_of(METHODS[wc.method])["beta"],
    shell:
        "exec python -m bags groups --counts-file {input:q} --edges {params.edges:q} "
        "--beta {params.beta:q} --out {output:q} 2> {log:q}"
