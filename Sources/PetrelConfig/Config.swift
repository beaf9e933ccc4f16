import Petrel
