from benchmarks.syncbench.cli import main

main()
