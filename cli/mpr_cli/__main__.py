from mpr_cli.app import main

main()
