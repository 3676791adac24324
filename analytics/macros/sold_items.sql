{# Items of orders that passed checkout; the grouping of the top_* models goes over these. #}
{% macro sold_items() -%}
    select i.*
    from {{ ref('stg_order_items') }} as i
    join {{ ref('stg_orders') }} as o using (storefront_id, order_id)
    where o.status in {{ sold_statuses() }}
{%- endmacro %}
