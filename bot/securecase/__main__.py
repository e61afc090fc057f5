from securecase.cli import main

main()
