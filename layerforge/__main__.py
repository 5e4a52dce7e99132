from layerforge.cli.app import main

main()
