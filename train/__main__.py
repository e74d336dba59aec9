import sys

from train.train import main

main(sys.argv[1:])
