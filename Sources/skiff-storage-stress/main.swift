print("skiff-storage-stress")
