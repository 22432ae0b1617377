# localnvme: the profile of the lvm shells the node plugin drives (LVM_COMMAND_PROFILE).
# Written by localnvme; changes are overwritten.
report {
	output_format = "json"
}
log {
	report_command_log = 1
	command_log_selection = "all"
	command_log_cols = "log_seq_num,log_type,log_context,log_object_type,log_object_name,log_message,log_errno,log_ret_code"
}
