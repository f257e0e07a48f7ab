"""`kgpt2 presets`: list every preset name with size and origin."""


def register(subparsers):
    parser = subparsers.add_parser(
        "presets",
        help="list GPT-2 presets (official and built-in offline ones)",
        description="List every preset name kgpt2 can load, with parameter "
        "count, float32 size on disk and where it comes from.",
    )
    parser.set_defaults(handler=run)


def run(args):
    import kgpt2

    rows = kgpt2.presets.list()
    print(f"{'name':<28} {'params':>14} {'size MB':>9}  source")
    for row in rows:
        print(f"{row.name:<28} {row.params:>14,} {row.size_on_disk_mb:>9,.1f}  {row.source}")
    print("\nAlso accepted: a local preset directory, hf://USER/REPO, kaggle://HANDLE.")
