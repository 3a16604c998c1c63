/* plugin_broken.c — a shared library that is not a gptq backend: it
 * exports no gptq_backend_entry symbol. */
int not_a_backend(void);
int not_a_backend(void) { return 42; }
