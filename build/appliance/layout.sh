# layout.sh - the appliance disk's partition sizes and offsets in MiB (sourced). A slot must hold
# every future root filesystem: changing ROOT_MIB needs a re-flash (the data partition moves).
ESP_MIB=256
ROOT_MIB=1536
CONFIG_MIB=32
DATA_MIB=512
ESP_START_MIB=1
ROOTA_START_MIB=$((ESP_START_MIB + ESP_MIB))
ROOTB_START_MIB=$((ROOTA_START_MIB + ROOT_MIB))
CONFIG_START_MIB=$((ROOTB_START_MIB + ROOT_MIB))
DATA_START_MIB=$((CONFIG_START_MIB + CONFIG_MIB))
# 1 MiB at the end for the backup GPT
DISK_MIB=$((DATA_START_MIB + DATA_MIB + 1))
